# Self-test fixture of tfschema.py: required argument principal_id is missing.
resource "azurerm_role_assignment" "this" {
  scope                = "/subscriptions/0"
  role_definition_name = "Reader"
}
