"""Layer 0: masked reductions, group statistics, checks and (lazy) full-vocabulary operations."""
