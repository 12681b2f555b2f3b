"""The Salesforce objects the platform extracts (a list the DAG reads when it is parsed: no heavy imports)."""

SOURCE_NAME = "salesforce"
RAW_SCHEMA = "raw_salesforce"
# Standard CRM objects and the CS team's custom objects; each lands in raw_salesforce.<name in lower case>.
SALESFORCE_OBJECTS = (
    "User", "Account", "Contact", "Opportunity", "Task", "Event", "Outcome_Goal__c", "Outcome_Result__c",
    "Meeting_Note__c", "Health_Score__c", "Usage__c", "Revenue__c",
)
