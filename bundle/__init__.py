"""The artifact bundle: the one contract between the offline half (pipelines) and the online half
(serving). Torch-free and web-free, so both sides import it:

- versions.py         writing, verifying, promoting, retaining versions; ``CURRENT``; manifests
- object_store.py     the same layout on an object store (fsspec): push, pull
- index.py            the FAISS index files (VectorIndex), tuned by index_tuner.py, on GPUs via gpu_index.py
- photo_predictions.py  the image model's verdict on every catalog photo (``image_predictions.npz``)
- runs.py             the nightly run summaries (``ARTIFACTS/runs/*.json``): their schema, writer and readers
- labels.py           the merchandisers' label decisions log (``ARTIFACTS/merch/labels.jsonl``)
"""
