# Minimal deployment: a new resource group, a new Premium Databricks workspace that the
# Function App reaches in management-header mode, and one PAT.
#
#   scripts/package.sh
#   cd infra && terraform init && terraform apply -var-file=examples/minimal.tfvars
#
# (ARM_SUBSCRIPTION_ID must be set, or add subscription_id = "..." here.)

location            = "westeurope"
name_prefix         = "patrot"
resource_group_name = "rg-pat-rotator"

new_databricks_workspace = {
  sku         = "premium"
  access_mode = "azure_contributor"
}

targets = [
  {
    name        = "analytics"
    workspace   = "new"
    secret_name = "databricks-pat"
  },
]
