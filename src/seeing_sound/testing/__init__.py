"""Sample data and tiny-model builders shared by tests, benchmarks and the demo."""
