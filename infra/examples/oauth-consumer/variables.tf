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

variable "secret_name" {
  description = "Key Vault secret that holds the etl service principal's OAuth secret."
  type        = string
  default     = "databricks-etl-oauth"
}

variable "alert_email_addresses" {
  description = "Who gets pat-rotator's alarm (failed or missing RotatePat runs) by e-mail."
  type        = list(string)
  default     = []
}
