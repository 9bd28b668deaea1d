"""srgan package."""
