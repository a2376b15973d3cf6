"""The settings layer both sides of exec share: the registry of variables and the configuration."""
