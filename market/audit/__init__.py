"""The audit log: one append-only AuditEvent for every action that moves money or rights."""
