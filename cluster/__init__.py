"""Distributed pretraining and finetuning with Ray Train + DeepSpeed ZeRO, checkpoints, job
submission to a Ray cluster, and the cluster manifests users deploy."""
