"""metamed.learners"""
