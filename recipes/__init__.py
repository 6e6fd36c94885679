"""Recipes: ``python -m recipes.<name>`` prepares data, trains, evaluates and exports one model.

Recipes are thin: they compose ``tfvideo`` pieces and hold no model code. Nothing in ``tfvideo``
imports them. The first ones (``recipes.tvnet_hmdb``, ``recipes.tvnet_ucf101``,
``recipes.tvnet_middlebury``) arrive with the TVNet action-recognition issue.
"""
