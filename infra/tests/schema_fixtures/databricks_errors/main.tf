# Self-test fixture of tfschema.py against the databricks schema derived from
# @cdktf/provider-databricks (schemas/databricks-1.99.0.json): a misspelt argument, a
# missing required argument, a bad nested block argument, a reference to a missing
# attribute, and a resource type the derived schema does not have.
resource "databricks_group" "g" {
  display_nam = "pat-rotator"
}

resource "databricks_group_member" "m" {
  member_id = "x"
}

resource "databricks_permissions" "tokens" {
  authorization = "tokens"

  access_control {
    group_name       = databricks_group.g.display_name
    permission_level = "CAN_USE"
    principal        = "x"
  }
}

resource "databricks_permission" "singular" {
  authorization    = "tokens"
  group_name       = "x"
  permission_level = "CAN_USE"
}

output "bad" {
  value = databricks_group.g.members
}
