"""metamed.dosing"""
