# Minimal deployment: a new resource group, a new Premium Databricks workspace where the
# Function App's identity is a plain member with token CAN_USE (the least-privileged
# default for a created workspace; no Contributor on it), and one PAT.
#
#   scripts/package.sh
#   cd infra && terraform init && terraform apply -var-file=examples/minimal.tfvars
#
# The vault role is the custom get/list/set role (key_vault_role = "custom", the default),
# which needs Owner or User Access Administrator; add key_vault_role = "builtin" (Key Vault
# Secrets Officer) where the deployer may not create role definitions.
#
# (ARM_SUBSCRIPTION_ID must be set, or add subscription_id = "..." here.)

location            = "westeurope"
name_prefix         = "patrot"
resource_group_name = "rg-pat-rotator"

new_databricks_workspace = {
  sku = "premium"
}

targets = [
  {
    name        = "analytics"
    workspace   = "new"
    secret_name = "databricks-pat"
  },
]

# Key Vault events: the vault's Event Grid system topic is created by this apply; once the
# code (with SecretEvent) is deployed, subscribe the function in a second apply:
#   terraform apply -var-file=examples/minimal.tfvars -var enable_event_subscriptions=true
