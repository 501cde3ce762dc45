"""Restore: writing a snapshot back out -- as an .mbz archive today."""
