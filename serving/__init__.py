"""Online service. Never imports torch, directly or through recsys/vision."""
