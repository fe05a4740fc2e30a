# Self-test fixture of tfschema.py: an argument the schema does not have at all
# (azurerm_role_assignment has no "expires_on").
resource "azurerm_role_assignment" "this" {
  scope                = "/subscriptions/0"
  role_definition_name = "Reader"
  principal_id         = "00000000-0000-0000-0000-000000000000"
  expires_on           = "2030-01-01"
}
