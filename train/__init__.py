"""The training-side consumer of chatsift shards: a streaming reader and the packed-row collator.

Imports schemas, torch and pyarrow; never curation or flows (tests/test_layering.py).
"""
