variable "subscription_id" {
  description = "Azure subscription. null = ARM_SUBSCRIPTION_ID."
  type        = string
  default     = null
}

variable "location" {
  description = "Azure region (must offer Flex Consumption)."
  type        = string
  default     = "westeurope"
}

variable "name_prefix" {
  description = "Short prefix for resource names (3-12 lowercase letters/digits)."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group to create."
  type        = string
}

variable "target_name" {
  description = "The pat-rotator target whose PAT the factory uses."
  type        = string
  default     = "adf"
}

variable "secret_name" {
  description = "Key Vault secret name of that PAT."
  type        = string
  default     = "databricks-pat-adf"
}

variable "databricks_cluster_version" {
  description = "Spark version of the job clusters the Databricks linked service creates."
  type        = string
  default     = "15.4.x-scala2.12"
}

variable "databricks_node_type" {
  description = "Node type of those job clusters."
  type        = string
  default     = "Standard_D4ds_v5"
}

variable "alert_email_addresses" {
  description = "Who gets pat-rotator's alarm (failed or missing RotatePat runs) by e-mail."
  type        = list(string)
  default     = []
}
