"""Inference hosts: declared trust (``spec``), health with cooldown (``health``), the
order to try them in (``select``), and the pool the router routes over (``pool``)."""
