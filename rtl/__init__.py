"""bitprop.rtl"""
