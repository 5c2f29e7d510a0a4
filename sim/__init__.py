"""bitprop.sim"""
