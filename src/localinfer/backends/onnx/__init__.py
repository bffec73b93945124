"""The local ONNX embedding engine (MiniLM, int8 or fp32), beside the embedded chat
engine: ``embedder`` runs the model, ``quantize`` derives its int8-compute copy."""
