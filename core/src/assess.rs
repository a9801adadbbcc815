//! Verdicts shared by agent and collector: front-door location, interception, Teams quality, score
//! (issue 2/10).
