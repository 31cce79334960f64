"""metamed.serve"""
