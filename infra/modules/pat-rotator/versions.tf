# The pat-rotator module: no provider configurations here (HashiCorp's module guidance: a
# module with its own provider blocks cannot be called with count, for_each or
# depends_on). The caller configures azurerm, azuread and databricks; infra/ is the root
# an operator applies, infra/examples/* are other callers. Why these version lines:
# infra/versions.tf.
terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.79"
    }
    azuread = {
      source  = "hashicorp/azuread"
      version = "~> 3.7"
    }
    databricks = {
      source  = "databricks/databricks"
      version = "~> 1.53"
    }
  }
}
