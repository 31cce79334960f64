"""metamed.report"""
