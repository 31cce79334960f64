"""metamed.serve"""

__all__: list[str] = []
