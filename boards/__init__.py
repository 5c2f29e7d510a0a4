"""bitprop.boards"""
