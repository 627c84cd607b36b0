import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RLOBJ_TYPECHECK", "1")
