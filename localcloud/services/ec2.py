"""EC2: security-group rule descriptions as sent."""

from __future__ import annotations

from typing import Any


def security_group_rule_descriptions() -> None:
    """Return the description of a rule that references a security group or a prefix list.

    moto's ``SecurityGroupRule.description`` reads the CIDR range only; a rule's description sent
    with ``UserIdGroupPairs`` or ``PrefixListIds`` is kept there (or, for prefix lists, dropped),
    so ``DescribeSecurityGroupRules`` answers none and the provider plans an update of every such
    rule on every plan. ``ModifySecurityGroupRules`` writes the new description into the CIDR
    range, which therefore wins when present.
    """
    from moto.ec2.models.security_groups import SecurityGroupRule

    original_init = SecurityGroupRule.__init__

    def init(self: SecurityGroupRule, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        prefix_list = kwargs.get("prefix_list_id", args[7] if len(args) > 7 else None)
        self.prefix_list_description = (prefix_list or {}).get("Description")

    def description(self: SecurityGroupRule) -> str | None:
        if "Description" in self.ip_range:
            return self.ip_range["Description"]
        if self.source_group.get("Description") is not None:
            return self.source_group["Description"]
        return getattr(self, "prefix_list_description", None)

    SecurityGroupRule.__init__ = init
    SecurityGroupRule.description = property(description)
