"""Schedule maths (pure) and the runner loop."""
