"""Recipes: ``python -m recipes.<name>`` prepares data, trains, evaluates and exports one model.

Recipes are thin: they compose ``tfvideo`` pieces and hold no model code. Nothing in ``tfvideo``
imports them. ``recipes.tvnet_hmdb`` (the project's main job), ``recipes.tvnet_ucf101`` and
``recipes.tvnet_middlebury``: see ``recipes/README.md``.
"""
