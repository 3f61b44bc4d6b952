"""The real Wan2.1 wing: pipelines from local files, real-size FLOPs and GPU timing, the build path."""
