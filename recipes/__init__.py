"""Built-in recipes (YAML), shipped inside the wheel."""
