output "pat_targets" {
  description = "The target objects of PAT_TARGETS, in input order."
  value       = local.pat_targets
}

output "pat_targets_json" {
  description = "PAT_TARGETS: the JSON array the Function App reads (contract §2). Contains no secret."
  value       = jsonencode(local.pat_targets)
}

output "by_name" {
  description = "Target objects keyed by target name."
  value       = { for t in local.pat_targets : t.name => t }
}

output "settings_hash" {
  description = "Per target, a hash of that target's settings; changes only when that target changes."
  value       = { for t in local.pat_targets : t.name => sha256(jsonencode(t)) }
}

output "secret_ids" {
  description = "Per target, the versionless Key Vault secret id that holds its PAT."
  value       = { for t in local.pat_targets : t.name => "${t.key_vault_url}/secrets/${t.secret_name}" }
}

output "vault_hosts" {
  description = "The distinct Key Vault hosts of the targets (lower case, sorted): PAT_ALLOWED_VAULTS when the targets come from a blob (contract section 2)."
  value       = sort(distinct([for t in local.pat_targets : lower(split("/", t.key_vault_url)[2])]))
}
