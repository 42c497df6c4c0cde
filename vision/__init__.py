"""Product-image CNN (training side imports torch; preprocess.py does not)."""
