"""hotline: calls and texts from villagers become help tickets that volunteers take by SMS."""
