"""metamed.evaluation"""
