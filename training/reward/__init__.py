"""Reward models: training (features, head, full, lora, qlora), their saved artifact, scoring and evaluation.

Nothing here imports Django: the worker's child process runs it on files the job's prepare() wrote."""
