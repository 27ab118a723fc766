"""Analysis tools: observers and figures; they never modify the model."""
