from .cga_block import CGABlock

__all__ = ['CGABlock']
