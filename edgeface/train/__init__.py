"""Training and evaluation (the ``train`` extra): data readers, tasks, the trainer, ``edgeface train`` / ``eval``."""
