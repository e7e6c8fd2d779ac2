"""The torch engine: the IR lowered to torch ops (`rules.py`), differentiated by torch.autograd
(`engine.py`)."""
