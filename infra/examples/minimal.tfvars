# Minimal deployment: a new resource group, a new Premium Databricks workspace where the
# Function App's identity is a plain member with token CAN_USE (the least-privileged
# default for a created workspace; no Contributor on it), and one PAT.
#
#   scripts/package.sh
#   cd infra && terraform init && terraform apply -var-file=examples/minimal.tfvars
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
