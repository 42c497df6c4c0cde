"""Offline jobs: data ingestion and validation, datasets, splits, the nightly DAG, the CLI."""
