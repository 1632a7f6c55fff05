"""Thin Prefect wiring: each task reads files, calls one curation function, writes files."""

import logging

# transformers imports torchao whenever it is installed (the dev extra installs it, for torchtune), and
# torchao then warns that its CUDA kernels do not load on a CPU, and torch that torchao registers enums the
# old way: noise in every run about a library chatsift never calls.
for _noisy in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)
