"""Evaluation metrics shared by the Lightning tasks and the ``pc3d-eval`` tool."""
