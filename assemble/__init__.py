"""ganforge's assembler: recipes, validation, shape inference, building, training and the CLI."""
