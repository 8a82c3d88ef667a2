"""nbgrader assignments from live notebooks: cell checksums, the student version, tampering."""

from .checksum import compute_checksum
from .student import student_version, tampered_cells

__all__ = ["compute_checksum", "student_version", "tampered_cells"]
