"""A user's extension of rlobj, loaded by ``rlobj fit`` from dotted paths (no registration needed):
a term (:mod:`.terms`), the provider of the input it reads (:mod:`.providers`) and a batch
transform (:mod:`.transforms`). See ``examples/configs/user_code.yaml``."""
