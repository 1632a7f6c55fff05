"""The training-side consumer of chatsift shards: streaming reader, packed-row collator, model loading,
the training loop and one whole run (train.run, also the torchrun entry point).

Imports schemas, torch, pyarrow, transformers and peft; never prefect, curation or flows
(tests/test_layering.py): the finetune flow in flows/ calls it.
"""
