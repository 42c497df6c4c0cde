"""Two-tower retrieval and second-stage ranking (training side imports torch; features.py does not)."""
