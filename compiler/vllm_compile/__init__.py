"""vllm-compile: a declarative, GitOps-style compiler for vLLM deployments."""

__version__ = "0.1.0"
