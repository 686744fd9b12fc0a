"""Shared test set-up: no hub access, no GPU, small thread pools."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
