"""`doppel ui`: a local web app over the stage functions (see docs/ui.md)."""
